import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A PBX operator (SIP extension) bound to a Bitrix24 employee; one-to-one within a company. */
@Entity({ name: 'bitrix_bindings' })
export class Binding {
  @PrimaryColumn({ name: 'company_id', type: 'int' })
  companyId: number;

  @PrimaryColumn({ name: 'sip_phone', type: 'varchar', length: 40 })
  sipPhone: string;

  @Column({ name: 'bitrix_user_id', type: 'int' })
  bitrixUserId: number;
}
