import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { AppError } from '../../common/app-error';
import { Call } from './call.entity';
import { CallSyncService } from './call-sync.service';
import type { CallItemDto, CallPageDto, ListCallsQueryDto } from './dto/calls.dto';

/** The calls of a company as the SPA shows them, and an admin's retry. */
@Injectable()
export class CallsService {
  constructor(
    @InjectRepository(Call) private readonly calls: Repository<Call>,
    private readonly sync: CallSyncService,
  ) {}

  async list(companyId: number, query: ListCallsQueryDto): Promise<CallPageDto> {
    const [rows, total] = await this.calls.findAndCount({
      where: { companyId, ...(query.sync_state ? { syncState: query.sync_state } : {}) },
      order: { createdAt: 'DESC', id: 'DESC' },
      skip: (query.page - 1) * query.per_page,
      take: query.per_page,
    });
    return { items: rows.map(toItem), page: query.page, per_page: query.per_page, total };
  }

  async retry(companyId: number, id: string): Promise<CallItemDto> {
    if (!/^\d{1,18}$/.test(id)) throw new AppError('NOT_FOUND', 'The call was not found.');
    const call = await this.calls.findOneBy({ companyId, id });
    if (!call) throw new AppError('NOT_FOUND', 'The call was not found.');
    if (call.syncState !== 'failed') throw new AppError('CONFLICT', `Only a failed call can be retried; this one is ${call.syncState}.`);
    await this.sync.retry(companyId, id);
    return toItem(await this.calls.findOneByOrFail({ companyId, id }));
  }
}

function toItem(call: Call): CallItemDto {
  return {
    id: Number(call.id),
    call_id: call.callId,
    direction: call.direction,
    phone_number: call.phoneNumber,
    status: call.status,
    sync_state: call.syncState,
    attempts: call.attempts,
    last_error: call.lastError,
    bitrix_call_id: call.bitrixCallId,
    started_at: call.startedAt.toISOString(),
    updated_at: call.updatedAt.toISOString(),
  };
}
