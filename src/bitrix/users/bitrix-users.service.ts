import { Injectable } from '@nestjs/common';
import { BitrixApiService } from '../bitrix-api.service';
import type { BitrixUserRow } from '../bitrix-api.types';
import type { BitrixIntegration } from '../bitrix-integration.entity';

export interface Employee {
  id: number;
  name: string;
  email: string | null;
  inner_phone: string | null;
}

/** The portal's active employees (no extranet users), every page (a 5,000-person portal costs three requests). */
@Injectable()
export class BitrixUsersService {
  constructor(private readonly api: BitrixApiService) {}

  async activeEmployees(integration: BitrixIntegration): Promise<Employee[]> {
    const rows = await this.api.listAll<BitrixUserRow>(integration, 'user.get', { FILTER: { ACTIVE: true, USER_TYPE: 'employee' }, sort: 'ID', order: 'ASC' });
    return rows
      .filter((row) => row.ACTIVE !== false)
      .map((row) => ({
        id: Number(row.ID),
        name: [row.NAME, row.LAST_NAME].filter(Boolean).join(' ').trim(),
        email: row.EMAIL || null,
        inner_phone: row.UF_PHONE_INNER ? String(row.UF_PHONE_INNER) : null,
      }));
  }
}
