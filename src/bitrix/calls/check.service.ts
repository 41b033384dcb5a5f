import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { DataSource } from 'typeorm';
import { AppError } from '../../common/app-error';
import { SecretBox } from '../../common/secret-box';
import type { Config } from '../../config/config';
import { BitrixApiService } from '../bitrix-api.service';
import type { BitrixIntegration } from '../bitrix-integration.entity';
import { IntegrationService } from '../oauth/integration.service';
import { BitrixRateLimiter } from '../bitrix-rate-limiter';
import { BOUND_EVENTS, handlerUrl, type BoundEvent } from '../event-handlers';
import type { CheckDto, CheckItemDto } from './dto/calls.dto';

const USER_SCOPES = ['user', 'user_basic', 'user_brief'];

/** `GET /check`: a live diagnosis of a company's Bitrix24 connection, for the admin and the on-call engineer. */
@Injectable()
export class CheckService {
  private readonly publicUrl: string;

  constructor(
    private readonly integrations: IntegrationService,
    private readonly api: BitrixApiService,
    private readonly limiter: BitrixRateLimiter,
    private readonly secrets: SecretBox,
    private readonly dataSource: DataSource,
    config: ConfigService<Config, true>,
  ) {
    this.publicUrl = config.get('app', { infer: true }).publicUrl;
  }

  async check(companyId: number): Promise<CheckDto> {
    const integration = await this.integrations.find(companyId);
    const checks: CheckItemDto[] = [];
    if (integration?.status !== 'connected') {
      checks.push({
        name: 'connected',
        ok: false,
        message: integration?.status === 'reauth_required' ? 'Bitrix24 needs to be re-authorised: connect the portal again.' : 'Bitrix24 is not connected.',
      });
      return { ok: false, checks };
    }
    checks.push({ name: 'connected', ok: true, message: `Connected to ${integration.domain}.` });
    checks.push(await this.token(integration));
    checks.push(this.scopes(integration));
    checks.push(await this.events(integration));
    checks.push(await this.headroom(integration));
    checks.push({
      name: 'default_line',
      ok: true,
      message: 'Bitrix24 sends click-to-call only to the app chosen as the default number for outgoing calls (Telephony → Settings); make sure it is this one.',
    });
    return { ok: checks.every((c) => c.ok), checks };
  }

  private async token(integration: BitrixIntegration): Promise<CheckItemDto> {
    try {
      await this.api.call(integration, 'app.info');
      return { name: 'token', ok: true, message: 'The access token works.' };
    } catch (err) {
      return { name: 'token', ok: false, message: err instanceof AppError ? err.message : 'Bitrix24 sent an unexpected answer.' };
    }
  }

  private scopes(integration: BitrixIntegration): CheckItemDto {
    const granted = integration.scope.split(/[\s,]+/).filter(Boolean);
    const missing = ['telephony', 'crm'].filter((s) => !granted.includes(s));
    if (!granted.some((s) => USER_SCOPES.includes(s))) missing.push('user_basic (or user / user_brief)');
    return missing.length
      ? { name: 'scopes', ok: false, message: `The application lacks the scopes: ${missing.join(', ')}. Add them to the app and reconnect.` }
      : { name: 'scopes', ok: true, message: `Granted: ${granted.join(', ')}.` };
  }

  private async events(integration: BitrixIntegration): Promise<CheckItemDto> {
    try {
      const { result } = await this.api.call<{ event: string; handler: string }[]>(integration, 'event.get');
      const key = this.secrets.decrypt(integration.handlerKey);
      const missing = (Object.keys(BOUND_EVENTS) as BoundEvent[]).filter(
        (event) => !result.some((b) => b.event.toUpperCase() === event && b.handler === handlerUrl(this.publicUrl, event, key)),
      );
      return missing.length
        ? { name: 'events', ok: false, message: `Not bound: ${missing.join(', ')}. Reconnect the portal to bind them.` }
        : { name: 'events', ok: true, message: 'Click-to-call, callback and uninstall events are bound.' };
    } catch (err) {
      return { name: 'events', ok: false, message: err instanceof AppError ? err.message : 'Bitrix24 sent an unexpected answer.' };
    }
  }

  private async headroom(integration: BitrixIntegration): Promise<CheckItemDto> {
    const limit = this.limiter.limitFor(integration.licenseFamily);
    const [row] = await this.dataSource.query<{ level: number }[]>(
      `SELECT GREATEST(0, level - $2 * EXTRACT(EPOCH FROM clock_timestamp() - updated_at)) AS level FROM bitrix_rate_buckets WHERE member_id = $1`,
      [integration.memberId, limit.rate],
    );
    const used = Math.ceil(Number(row?.level ?? 0));
    const free = Math.max(0, limit.burst - used);
    return { name: 'rate_limit', ok: free > 0, message: `${free} of ${limit.burst} requests free right now (${limit.rate}/s refill).` };
  }
}
