import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { AppError, type FieldErrors } from '../../common/app-error';
import { randomSecret, SecretBox, SecretUnreadable, sha256Hex } from '../../common/secret-box';
import type { Config } from '../../config/config';
import { BitrixApiService } from '../bitrix-api.service';
import type { BitrixIntegration } from '../bitrix-integration.entity';
import { CompanyViewService } from '../company-view.service';
import { IntegrationService } from '../oauth/integration.service';
import { BitrixUsersService, type Employee } from '../users/bitrix-users.service';
import { Binding } from './binding.entity';
import { BitrixSettings } from './bitrix-settings.entity';
import type { BindingDto, SaveSettingsDto, SettingsDto } from './dto/settings.dto';
import { KnownExtension } from './known-extension.entity';

const DEFAULTS = {
  pipelineId: null,
  crmCreate: 'none',
  crmSource: null,
  showCard: 'ringing',
  attachRecords: true,
  missedCallTask: false,
  smartRedirect: false,
  defaultBitrixUserId: null,
} as const satisfies Partial<BitrixSettings>;

/** A company's call-mirroring settings and operator bindings, validated against its portal. */
@Injectable()
export class SettingsService {
  private readonly logger = new Logger(SettingsService.name);
  private readonly publicUrl: string;

  constructor(
    @InjectRepository(BitrixSettings) private readonly settings: Repository<BitrixSettings>,
    @InjectRepository(Binding) private readonly bindings: Repository<Binding>,
    @InjectRepository(KnownExtension) private readonly extensions: Repository<KnownExtension>,
    private readonly integrations: IntegrationService,
    private readonly users: BitrixUsersService,
    private readonly api: BitrixApiService,
    private readonly secrets: SecretBox,
    private readonly dataSource: DataSource,
    private readonly view: CompanyViewService,
    config: ConfigService<Config, true>,
  ) {
    this.publicUrl = config.get('app', { infer: true }).publicUrl;
  }

  /** `employees`: the portal's list when the caller already has it (a save just validated against it). */
  async get(companyId: number, employees?: Employee[]): Promise<SettingsDto> {
    const row = await this.row(companyId);
    const bindings = await this.bindings.find({ where: { companyId }, order: { sipPhone: 'ASC' } });
    return this.toDto(row, await this.smartRedirectKey(row), bindings, await this.suggest(companyId, bindings, employees));
  }

  async save(companyId: number, dto: SaveSettingsDto): Promise<SettingsDto> {
    const integration = await this.integrations.requireConnected(companyId);
    const employees = await this.validateAgainstPortal(integration, dto);
    await this.row(companyId);

    await this.dataSource.transaction(async (em) => {
      // Saves of one company are serialised: bindings are replaced as a whole.
      const row = await em.getRepository(BitrixSettings).findOneOrFail({ where: { companyId }, lock: { mode: 'pessimistic_write' } });
      const patch: Partial<BitrixSettings> = {};
      if (dto.pipeline_id !== undefined) patch.pipelineId = dto.pipeline_id;
      if (dto.crm_create !== undefined) patch.crmCreate = dto.crm_create;
      if (dto.crm_source !== undefined) patch.crmSource = dto.crm_source;
      if (dto.show_card !== undefined) patch.showCard = dto.show_card;
      if (dto.attach_records !== undefined) patch.attachRecords = dto.attach_records;
      if (dto.missed_call_task !== undefined) patch.missedCallTask = dto.missed_call_task;
      if (dto.smart_redirect !== undefined) patch.smartRedirect = dto.smart_redirect;
      if (dto.default_bitrix_user_id !== undefined) patch.defaultBitrixUserId = dto.default_bitrix_user_id;
      await em.getRepository(BitrixSettings).save({ ...row, ...patch });
      if (dto.bindings) {
        await em.getRepository(Binding).delete({ companyId });
        await em.getRepository(Binding).insert(dto.bindings.map((b) => ({ companyId, sipPhone: b.sip_phone, bitrixUserId: b.bitrix_user_id })));
        if (dto.bindings.length) {
          await em
            .createQueryBuilder()
            .insert()
            .into(KnownExtension)
            .values(dto.bindings.map((b) => ({ companyId, sipPhone: b.sip_phone, lastSeenAt: new Date() })))
            .orUpdate(['last_seen_at'], ['company_id', 'sip_phone'])
            .execute();
        }
      }
    });
    // Committed: the next Smart Redirect answer uses the new flag and bindings.
    this.view.invalidate(companyId);
    return this.get(companyId, employees ?? undefined);
  }

  /** One-to-one bindings, active employees, an existing pipeline and lead source: all errors at once. */
  private async validateAgainstPortal(integration: BitrixIntegration, dto: SaveSettingsDto): Promise<Employee[] | null> {
    const errors: FieldErrors = {};
    const add = (field: string, message: string) => (errors[field] ??= []).push(message);

    const seenPhones = new Map<string, number>();
    const seenUsers = new Map<number, number>();
    dto.bindings?.forEach((b, i) => {
      if (seenPhones.has(b.sip_phone)) add(`bindings.${i}.sip_phone`, `sip_phone ${b.sip_phone} is already bound in bindings.${seenPhones.get(b.sip_phone)}.`);
      else seenPhones.set(b.sip_phone, i);
      if (seenUsers.has(b.bitrix_user_id)) add(`bindings.${i}.bitrix_user_id`, `Bitrix24 user ${b.bitrix_user_id} is already bound in bindings.${seenUsers.get(b.bitrix_user_id)}.`);
      else seenUsers.set(b.bitrix_user_id, i);
    });
    if (Object.keys(errors).length) throw new AppError('VALIDATION_FAILED', 'The given data was invalid.', errors);

    const userIds = [...(dto.bindings ?? []).map((b) => b.bitrix_user_id), ...(dto.default_bitrix_user_id ? [dto.default_bitrix_user_id] : [])];
    const pipelineId = dto.pipeline_id ?? null;
    const source = dto.crm_source ?? null;
    const [employees, categories, sources] = await Promise.all([
      userIds.length ? this.users.activeEmployees(integration) : null,
      pipelineId !== null ? this.api.call<{ categories?: { id: number | string }[] }>(integration, 'crm.category.list', { entityTypeId: 2 }) : null,
      // Every page: a portal can have far more than 50 statuses.
      source !== null ? this.api.listAll<{ STATUS_ID: string }>(integration, 'crm.status.list', { filter: { ENTITY_ID: 'SOURCE' } }) : null,
    ]);

    const active = new Set((employees ?? []).map((e) => e.id));
    dto.bindings?.forEach((b, i) => {
      if (!active.has(b.bitrix_user_id)) add(`bindings.${i}.bitrix_user_id`, `Bitrix24 user ${b.bitrix_user_id} is not an active employee of the portal.`);
    });
    if (dto.default_bitrix_user_id && !active.has(dto.default_bitrix_user_id)) {
      add('default_bitrix_user_id', `Bitrix24 user ${dto.default_bitrix_user_id} is not an active employee of the portal.`);
    }
    if (categories) {
      const list = categories.result.categories;
      if (!Array.isArray(list)) throw new AppError('BITRIX_REJECTED', 'Bitrix24 answered crm.category.list without a list of pipelines.');
      if (!list.some((c) => Number(c.id) === pipelineId)) add('pipeline_id', `Deal pipeline ${pipelineId} does not exist in the portal.`);
    }
    if (sources && !sources.some((s) => s.STATUS_ID === source)) add('crm_source', `Lead source ${source} does not exist in the portal.`);
    if (Object.keys(errors).length) throw new AppError('VALIDATION_FAILED', 'The given data was invalid.', errors);
    return employees;
  }

  /** Active employees whose extension equals a known, unbound extension (and who are unbound themselves). */
  private async suggest(companyId: number, bindings: Binding[], known?: Employee[]): Promise<BindingDto[]> {
    const boundPhones = new Set(bindings.map((b) => b.sipPhone));
    const boundUsers = new Set(bindings.map((b) => b.bitrixUserId));
    const candidates = (await this.extensions.findBy({ companyId })).filter((e) => !boundPhones.has(e.sipPhone));
    if (!candidates.length) return [];
    let employees: Employee[];
    try {
      employees = known ?? (await this.users.activeEmployees(await this.integrations.requireConnected(companyId)));
    } catch (err) {
      // Suggestions are a convenience: the settings still load when Bitrix24 cannot be asked.
      this.logger.warn({ companyId, err: (err as Error).message }, 'No binding suggestions');
      return [];
    }
    const byPhone = new Map<string, number>();
    for (const e of employees) if (e.inner_phone && !boundUsers.has(e.id) && !byPhone.has(e.inner_phone)) byPhone.set(e.inner_phone, e.id);
    return candidates
      .filter((c) => byPhone.has(c.sipPhone))
      .map((c) => ({ sip_phone: c.sipPhone, bitrix_user_id: byPhone.get(c.sipPhone)! }))
      .sort((a, b) => a.sip_phone.localeCompare(b.sip_phone));
  }

  /** The company's row, created with defaults and a Smart Redirect key on first use. */
  private async row(companyId: number): Promise<BitrixSettings> {
    const existing = await this.settings.findOneBy({ companyId });
    if (existing) return existing;
    const key = randomSecret(24);
    await this.settings
      .createQueryBuilder()
      .insert()
      .values({ companyId, ...DEFAULTS, smartRedirectKey: this.secrets.encrypt(key), smartRedirectKeyHash: sha256Hex(key) })
      .orIgnore()
      .execute();
    this.view.invalidate(companyId);
    return this.settings.findOneByOrFail({ companyId });
  }

  /**
   * The Smart Redirect key in clear. Sealed by the previous key → re-sealed with APP_KEY. Unreadable
   * (APP_KEY was changed) → a new key, so the settings still load; the PBX needs the new URL.
   */
  private async smartRedirectKey(row: BitrixSettings): Promise<string> {
    const sealed = row.smartRedirectKey;
    let key: string;
    let hash = row.smartRedirectKeyHash;
    try {
      key = this.secrets.decrypt(sealed);
      if (this.secrets.isCurrent(sealed)) return key;
    } catch (err) {
      if (!(err instanceof SecretUnreadable)) throw err;
      key = randomSecret(24);
      hash = sha256Hex(key);
      this.logger.error(
        { companyId: row.companyId },
        'The Smart Redirect key cannot be decrypted with APP_KEY (the key was changed): a new Smart Redirect URL was issued; update it in the PBX.',
      );
    }
    // Only over the ciphertext read, so concurrent readers agree on one key.
    const { affected } = await this.settings.update({ companyId: row.companyId, smartRedirectKey: sealed }, { smartRedirectKey: this.secrets.encrypt(key), smartRedirectKeyHash: hash });
    // A re-issued key: the old URL stops working at once.
    if (affected && hash !== row.smartRedirectKeyHash) this.view.invalidate(row.companyId);
    if (affected) return key;
    return this.secrets.decrypt((await this.settings.findOneByOrFail({ companyId: row.companyId })).smartRedirectKey);
  }

  private toDto(row: BitrixSettings, smartRedirectKey: string, bindings: Binding[], suggested: BindingDto[]): SettingsDto {
    return {
      pipeline_id: row.pipelineId,
      crm_create: row.crmCreate,
      crm_source: row.crmSource,
      show_card: row.showCard,
      attach_records: row.attachRecords,
      missed_call_task: row.missedCallTask,
      smart_redirect: row.smartRedirect,
      default_bitrix_user_id: row.defaultBitrixUserId,
      bindings: bindings.map((b) => ({ sip_phone: b.sipPhone, bitrix_user_id: b.bitrixUserId })),
      suggested_bindings: suggested,
      smart_redirect_url: `${this.publicUrl}/pbx/smart-redirect/${smartRedirectKey}`,
    };
  }
}
