import { Column, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';

export type CrmCreate = 'none' | 'inbound' | 'outbound' | 'all';
export type ShowCard = 'never' | 'ringing' | 'answered';

/** A company's call-mirroring settings (SPEC §5); a company without a row has the defaults. */
@Entity({ name: 'bitrix_settings' })
export class BitrixSettings {
  @PrimaryColumn({ name: 'company_id', type: 'int' })
  companyId: number;

  @Column({ name: 'pipeline_id', type: 'int', nullable: true })
  pipelineId: number | null;

  @Column({ name: 'crm_create', type: 'varchar', length: 16 })
  crmCreate: CrmCreate;

  @Column({ name: 'crm_source', type: 'varchar', length: 100, nullable: true })
  crmSource: string | null;

  @Column({ name: 'show_card', type: 'varchar', length: 16 })
  showCard: ShowCard;

  @Column({ name: 'attach_records', type: 'boolean' })
  attachRecords: boolean;

  @Column({ name: 'missed_call_task', type: 'boolean' })
  missedCallTask: boolean;

  @Column({ name: 'smart_redirect', type: 'boolean' })
  smartRedirect: boolean;

  @Column({ name: 'default_bitrix_user_id', type: 'int', nullable: true })
  defaultBitrixUserId: number | null;

  /** Secret in the Smart Redirect URL: encrypted, plus its hash for lookups. */
  @Column({ name: 'smart_redirect_key', type: 'text' })
  smartRedirectKey: string;

  @Column({ name: 'smart_redirect_key_hash', type: 'varchar', length: 64 })
  smartRedirectKeyHash: string;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;
}
