import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { BitrixIntegration } from '../bitrix-integration.entity';
import { CompanyViewService } from '../company-view.service';
import type { CallbackCaller } from './callback-auth.service';
import type { EventBodyDto, EventResultDto } from './dto/originate.dto';
import { CallSyncService } from '../calls/call-sync.service';
import { OriginateService } from './originate.service';

/** POST /integration/bitrix/events: one small handler per Bitrix24 event. */
@Injectable()
export class BitrixEventsService {
  private readonly logger = new Logger(BitrixEventsService.name);

  constructor(
    @InjectRepository(BitrixIntegration) private readonly integrations: Repository<BitrixIntegration>,
    private readonly originates: OriginateService,
    private readonly sync: CallSyncService,
    private readonly view: CompanyViewService,
  ) {}

  async handle(caller: CallbackCaller, body: EventBodyDto): Promise<EventResultDto> {
    switch (body.event) {
      case 'ONAPPUNINSTALL':
        await this.uninstalled(caller.integration);
        return {};
      default:
        return this.originates.callback(caller, body.data);
    }
  }

  /**
   * The app was removed from the portal: its tokens are dead anyway; delete them and mark the
   * integration disconnected (its key stops working). Pending calls stay: call sync pauses them
   * until the company reconnects the same portal.
   */
  private async uninstalled(integration: BitrixIntegration): Promise<void> {
    await this.integrations.update(
      { id: integration.id },
      { status: 'disconnected', accessToken: null, refreshToken: null, accessExpiresAt: null, applicationToken: null, connectedAt: null, lastError: 'The application was uninstalled from the Bitrix24 portal.' },
    );
    this.view.invalidate(integration.companyId);
    await this.sync.holdForPortal(integration.companyId, integration.memberId);
    this.logger.log({ memberId: integration.memberId }, 'The application was uninstalled from the portal: integration disconnected');
  }
}
