import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A SIP extension seen in calls or settings: the candidates for suggested bindings. */
@Entity({ name: 'pbx_known_extensions' })
export class KnownExtension {
  @PrimaryColumn({ name: 'company_id', type: 'int' })
  companyId: number;

  @PrimaryColumn({ name: 'sip_phone', type: 'varchar', length: 40 })
  sipPhone: string;

  @Column({ name: 'last_seen_at', type: 'timestamptz' })
  lastSeenAt: Date;
}
