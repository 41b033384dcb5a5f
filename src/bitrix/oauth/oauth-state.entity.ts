import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** A single-use OAuth `state`, bound to the company and portal it was issued for; only its hash is kept. */
@Entity({ name: 'bitrix_oauth_states' })
export class OAuthState {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ name: 'company_id', type: 'int' })
  companyId: number;

  @Column({ name: 'state_hash', type: 'varchar', length: 64 })
  stateHash: string;

  @Column({ type: 'varchar', length: 255 })
  domain: string;

  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt: Date;

  @Column({ name: 'used_at', type: 'timestamptz', nullable: true })
  usedAt: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}
