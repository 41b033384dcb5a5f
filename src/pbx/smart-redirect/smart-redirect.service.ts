import { Injectable } from '@nestjs/common';
import { CompanyViewService } from '../../bitrix/company-view.service';
import { AppError } from '../../common/app-error';
import { sha256Hex } from '../../common/secret-box';
import { PHONE_FORMAT, PHONE_MAX_LENGTH } from './dto/responsible.dto';
import { ResponsibleService } from './responsible.service';

/** Utel's Smart Redirect `request` source reads exactly this: an extension, or nothing. */
export type SmartRedirectAnswer = { extension: string } | Record<string, never>;

/** Keys are `randomSecret(24)` (base64url); anything else cannot be one, so it is not looked up. */
const KEY_FORMAT = /^[A-Za-z0-9_-]{16,128}$/;

/** The public Smart Redirect URL (SPEC §8): the company by its secret key, then the responsible lookup. */
@Injectable()
export class SmartRedirectService {
  constructor(
    private readonly view: CompanyViewService,
    private readonly responsible: ResponsibleService,
  ) {}

  async answer(key: string, phone: unknown): Promise<SmartRedirectAnswer> {
    // The PBX's wait starts now: finding the company by its key counts against the deadline.
    const startedAt = Date.now();
    // Looked up by hash, so the comparison leaks nothing about stored keys.
    const company = KEY_FORMAT.test(key) ? await this.view.byKey(sha256Hex(key)) : null;
    if (!company) throw new AppError('NOT_FOUND', 'Unknown Smart Redirect key.');
    if (typeof phone !== 'string' || phone.length > PHONE_MAX_LENGTH || !PHONE_FORMAT.test(phone)) {
      throw AppError.validation('phone', 'phone must be a phone number.');
    }
    if (!company.smartRedirect) return {};
    const { sip_phone } = await this.responsible.lookup(company.companyId, phone, startedAt);
    return sip_phone ? { extension: sip_phone } : {};
  }
}
