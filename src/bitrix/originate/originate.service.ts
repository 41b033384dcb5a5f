import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InjectRepository } from '@nestjs/typeorm';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { Repository } from 'typeorm';
import { AppError } from '../../common/app-error';
import type { Config } from '../../config/config';
import { normalizePhone } from '../../pbx/phone-number';
import { PBX_DRIVER, type LateFailure, type PbxDriver } from '../../pbx/drivers/pbx-driver';
import { BitrixApiService } from '../bitrix-api.service';
import { ResponsibleService } from '../../pbx/smart-redirect/responsible.service';
import { CallSyncService } from '../calls/call-sync.service';
import { BitrixIntegration } from '../bitrix-integration.entity';
import { Binding } from '../settings/binding.entity';
import { BitrixSettings } from '../settings/bitrix-settings.entity';
import { KnownExtension } from '../settings/known-extension.entity';
import type { CallbackCaller } from './callback-auth.service';
import { CallbackStartDataDto, type OriginateBodyDto, type OriginateResultDto } from './dto/originate.dto';
import { Originate, type OriginateSource } from './originate.entity';

interface Dial {
  integration: BitrixIntegration;
  sipPhone: string;
  phoneNumber: string;
  bitrixCallId: string | null;
  bitrixUserId: number | null;
  source: OriginateSource;
}

/**
 * Click-to-call: who dials (binding), which number (E.164), one `pbx_originates` row per accepted
 * request, then the PBX driver. A request the PBX cannot take is answered at once (503/502) and
 * its Bitrix24 call finished as failed, so no card hangs; nothing is retried later.
 */
@Injectable()
export class OriginateService {
  private readonly logger = new Logger(OriginateService.name);
  private readonly country: string;

  constructor(
    @InjectRepository(Originate) private readonly originates: Repository<Originate>,
    @InjectRepository(Binding) private readonly bindings: Repository<Binding>,
    @InjectRepository(KnownExtension) private readonly extensions: Repository<KnownExtension>,
    @InjectRepository(BitrixSettings) private readonly settings: Repository<BitrixSettings>,
    @Inject(PBX_DRIVER) private readonly pbx: PbxDriver,
    private readonly api: BitrixApiService,
    private readonly responsible: ResponsibleService,
    private readonly sync: CallSyncService,
    config: ConfigService<Config, true>,
  ) {
    this.country = config.get('app', { infer: true }).defaultCountry;
  }

  /** POST /integration/bitrix/originate in either form. */
  async originate(caller: CallbackCaller, body: OriginateBodyDto): Promise<OriginateResultDto> {
    const { integration } = caller;
    if (caller.kind === 'event') {
      if (!body.data) throw AppError.validation('data', 'data is required for ONEXTERNALCALLSTART.');
      const { USER_ID, PHONE_NUMBER, PHONE_NUMBER_INTERNATIONAL, CALL_ID } = body.data;
      const bitrixUserId = Number(USER_ID);
      const sipPhone = await this.sipPhoneOf(integration.companyId, bitrixUserId, 'data.USER_ID');
      const phoneNumber = this.phone(PHONE_NUMBER_INTERNATIONAL || PHONE_NUMBER, 'data.PHONE_NUMBER');
      return this.dial({ integration, sipPhone, phoneNumber, bitrixCallId: CALL_ID, bitrixUserId, source: 'bitrix' });
    }
    const errors: Record<string, string[]> = {};
    if (body.sip_phone === undefined) errors.sip_phone = ['sip_phone is required.'];
    if (body.phone_number === undefined) errors.phone_number = ['phone_number is required.'];
    if (Object.keys(errors).length) throw new AppError('VALIDATION_FAILED', 'The given data was invalid.', errors);
    const sipPhone = (body.sip_phone as string).trim();
    const phoneNumber = this.phone(body.phone_number, 'phone_number');
    if (caller.kind === 'user') {
      const own = await this.sipPhoneOf(integration.companyId, caller.bitrixUserId, 'auth');
      if (own !== sipPhone) throw new AppError('FORBIDDEN', 'You may only call from your own extension.');
      return this.dial({ integration, sipPhone, phoneNumber, bitrixCallId: null, bitrixUserId: caller.bitrixUserId, source: 'api' });
    }
    const binding = await this.bindings.findOneBy({ companyId: integration.companyId, sipPhone });
    if (!binding && !(await this.extensions.existsBy({ companyId: integration.companyId, sipPhone }))) {
      throw AppError.validation('sip_phone', 'This extension is not known: bind it to an employee in the settings.');
    }
    return this.dial({ integration, sipPhone, phoneNumber, bitrixCallId: null, bitrixUserId: binding?.bitrixUserId ?? null, source: 'api' });
  }

  /**
   * ONEXTERNALCALLBACKSTART: a website visitor asked to be called back. The operator responsible
   * for the visitor's number in the CRM (SPEC §8), else the default one (`default_bitrix_user_id`),
   * dials the visitor; Bitrix24 registers nothing for a callback, so we register it (TYPE 4) for
   * that operator and keep its CALL_ID with the originate.
   */
  async callback(caller: CallbackCaller, rawData: Record<string, unknown> | undefined): Promise<OriginateResultDto> {
    const data = await validData(rawData);
    const { integration } = caller;
    const phoneNumber = this.phone(data.PHONE_NUMBER, 'data.PHONE_NUMBER');
    const owner = await this.responsible.lookup(integration.companyId, phoneNumber);
    let bitrixUserId: number | null;
    let sipPhone: string;
    if (owner.sip_phone !== null && owner.bitrix_user_id !== null) {
      ({ sip_phone: sipPhone, bitrix_user_id: bitrixUserId } = owner);
    } else {
      const settings = await this.settings.findOneBy({ companyId: integration.companyId });
      bitrixUserId = settings?.defaultBitrixUserId ?? null;
      if (bitrixUserId === null) throw AppError.validation('data', 'Nobody is responsible for this number and no default operator is set for callback requests (default_bitrix_user_id).');
      sipPhone = await this.sipPhoneOf(integration.companyId, bitrixUserId, 'data');
    }
    this.requireAvailable();
    const crmEntityId = Number(data.CRM_ENTITY_ID);
    const { result } = await this.api.call<{ CALL_ID?: string }>(integration, 'telephony.externalcall.register', {
      USER_ID: bitrixUserId,
      PHONE_NUMBER: phoneNumber,
      TYPE: 4,
      CALL_START_DATE: new Date().toISOString().replace('Z', '+00:00'),
      SHOW: 0,
      EXTERNAL_CALL_ID: `callback.${randomUUID()}`,
      ...(data.LINE_NUMBER ? { LINE_NUMBER: data.LINE_NUMBER } : {}),
      ...(data.CRM_ENTITY_TYPE && crmEntityId > 0 ? { CRM_ENTITY_TYPE: data.CRM_ENTITY_TYPE, CRM_ENTITY_ID: crmEntityId } : {}),
    });
    if (typeof result.CALL_ID !== 'string') throw new AppError('BITRIX_REJECTED', 'Bitrix24 did not register the callback call.');
    return this.dial({ integration, sipPhone, phoneNumber, bitrixCallId: result.CALL_ID, bitrixUserId, source: 'callback' });
  }

  private async dial(dial: Dial): Promise<OriginateResultDto> {
    const unavailable = this.pbx.unavailable;
    if (unavailable) {
      this.finishFailed(dial, '503', unavailable.message);
      throw unavailable;
    }
    const row = await this.originates.save(
      this.originates.create({
        companyId: dial.integration.companyId,
        sipPhone: dial.sipPhone,
        phoneNumber: dial.phoneNumber,
        bitrixCallId: dial.bitrixCallId,
        bitrixUserId: dial.bitrixUserId,
        source: dial.source,
        status: 'dialing',
        error: null,
      }),
    );
    const request = { originateId: row.id, companyId: row.companyId, sipPhone: row.sipPhone, phoneNumber: row.phoneNumber, bitrixCallId: row.bitrixCallId };
    try {
      await this.pbx.originate(request, (failure) => void this.lateFailure(row.id, dial, failure));
    } catch (err) {
      const message = err instanceof AppError ? err.message : 'The PBX failed.';
      await this.originates.update({ id: row.id }, { status: 'failed', error: message });
      this.finishFailed(dial, '503', message);
      throw err;
    }
    return { call_id: row.id };
  }

  private async lateFailure(id: number, dial: Dial, failure: LateFailure): Promise<void> {
    try {
      await this.originates.update({ id }, { status: 'failed', error: failure.reason });
    } catch (err) {
      this.logger.error({ originateId: id, err: (err as Error).message }, 'Could not record a failed originate');
    }
    this.finishFailed(dial, failure.statusCode, failure.reason);
  }

  /** Finishes the Bitrix24 call of a failed originate through call sync's outbox (durable, retried; the answer does not wait). */
  private finishFailed(dial: Dial, statusCode: LateFailure['statusCode'], reason: string): void {
    if (!dial.bitrixCallId) return;
    const status = statusCode === '486' ? 'busy' : statusCode === '480' ? 'no_answer' : 'failed';
    this.logger.warn({ memberId: dial.integration.memberId, reason }, 'Click-to-call not placed; its Bitrix24 call is finished as failed');
    this.sync
      .finishFailedClickToCall({ companyId: dial.integration.companyId, bitrixCallId: dial.bitrixCallId, sipPhone: dial.sipPhone, phoneNumber: dial.phoneNumber, status, reference: randomUUID() })
      .catch((err: unknown) => this.logger.error({ memberId: dial.integration.memberId, err }, 'Could not queue the finish of a failed click-to-call'));
  }

  private requireAvailable(): void {
    const unavailable = this.pbx.unavailable;
    if (unavailable) throw unavailable;
  }

  /** The extension bound to a Bitrix24 employee, or 422 on `field`. */
  private async sipPhoneOf(companyId: number, bitrixUserId: number, field: string): Promise<string> {
    const binding = Number.isSafeInteger(bitrixUserId) ? await this.bindings.findOneBy({ companyId, bitrixUserId }) : null;
    if (!binding) throw AppError.validation(field, 'This Bitrix24 employee is not bound to an extension.');
    return binding.sipPhone;
  }

  private phone(raw: string | undefined, field: string): string {
    const phone = raw ? normalizePhone(raw, this.country) : null;
    if (!phone) throw AppError.validation(field, 'The phone number is not valid.');
    return phone.e164;
  }
}

/** The callback's `data`, validated with unknown keys ignored (Bitrix24 adds keys). */
async function validData(raw: Record<string, unknown> | undefined): Promise<CallbackStartDataDto> {
  const data = plainToInstance(CallbackStartDataDto, raw ?? {});
  const errors = await validate(data, { whitelist: true, forbidNonWhitelisted: false });
  if (errors.length) {
    throw new AppError('VALIDATION_FAILED', 'The given data was invalid.', Object.fromEntries(errors.map((e) => [`data.${e.property}`, Object.values(e.constraints ?? {})])));
  }
  return data;
}
