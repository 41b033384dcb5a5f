import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

export type IntegrationStatus = 'disconnected' | 'connected' | 'reauth_required';

/**
 * A company's link to its Bitrix24 portal (one per company), keyed on Bitrix24's side by
 * `member_id`, which survives portal renames. Every secret column holds SecretBox ciphertext.
 */
@Entity({ name: 'bitrix_integrations' })
export class BitrixIntegration {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ name: 'company_id', type: 'int' })
  companyId: number;

  @Column({ name: 'member_id', type: 'varchar', length: 64 })
  memberId: string;

  /** The portal origin, e.g. `https://acme.bitrix24.uz`; every REST call goes to `<domain>/rest/`. */
  @Column({ type: 'varchar', length: 255 })
  domain: string;

  @Column({ type: 'varchar', length: 24 })
  status: IntegrationStatus;

  /** Origin of the OAuth server that issued the tokens (refreshes go there). */
  @Column({ name: 'oauth_server', type: 'varchar', length: 255 })
  oauthServer: string;

  @Column({ name: 'access_token', type: 'text', nullable: true })
  accessToken: string | null;

  @Column({ name: 'refresh_token', type: 'text', nullable: true })
  refreshToken: string | null;

  @Column({ name: 'access_expires_at', type: 'timestamptz', nullable: true })
  accessExpiresAt: Date | null;

  @Column({ type: 'varchar', length: 1000, default: '' })
  scope: string;

  /** The Bitrix24 user who approved the connection: responsible of last resort. */
  @Column({ name: 'owner_bitrix_user_id', type: 'int', nullable: true })
  ownerBitrixUserId: number | null;

  /** Bitrix24 sends it only inside events; the first genuine delivery teaches it. */
  @Column({ name: 'application_token', type: 'text', nullable: true })
  applicationToken: string | null;

  /** Per-integration secret carried by the event handler URLs (`?key=`), encrypted … */
  @Column({ name: 'handler_key', type: 'text' })
  handlerKey: string;

  /** … and its SHA-256, to find the integration an event belongs to. */
  @Column({ name: 'handler_key_hash', type: 'varchar', length: 64 })
  handlerKeyHash: string;

  /** `app.info` LICENSE_FAMILY: `ent` portals get the Enterprise rate limit. */
  @Column({ name: 'license_family', type: 'varchar', length: 32, nullable: true })
  licenseFamily: string | null;

  @Column({ name: 'connected_at', type: 'timestamptz', nullable: true })
  connectedAt: Date | null;

  @Column({ name: 'last_error', type: 'text', nullable: true })
  lastError: string | null;

  /** The instance refreshing the tokens right now, and until when (a lease instead of a row lock held across the OAuth request). */
  @Column({ name: 'refresh_lease_owner', type: 'varchar', length: 64, nullable: true })
  refreshLeaseOwner: string | null;

  @Column({ name: 'refresh_lease_until', type: 'timestamptz', nullable: true })
  refreshLeaseUntil: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;
}
