import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

export type OriginateSource = 'bitrix' | 'api' | 'callback';
export type OriginateStatus = 'dialing' | 'failed';

/**
 * A click-to-call the service accepted and handed to the PBX. Call sync reads it: the PBX's events
 * for that call (by `bitrix_call_id`, or the 2-minute match of SPEC §6) finish `bitrixCallId`
 * instead of registering a new call; `matchedCallId` makes each originate match at most one call.
 */
@Entity({ name: 'pbx_originates' })
export class Originate {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ name: 'company_id', type: 'int' })
  companyId: number;

  @Column({ name: 'sip_phone', type: 'varchar', length: 40 })
  sipPhone: string;

  /** E.164 (`+998901234567`), as call sync normalises the PBX's numbers. */
  @Column({ name: 'phone_number', type: 'varchar', length: 32 })
  phoneNumber: string;

  /** The Bitrix24 call this originate finishes: `data[CALL_ID]` of ONEXTERNALCALLSTART, or one we registered (callback). */
  @Column({ name: 'bitrix_call_id', type: 'varchar', length: 100, nullable: true })
  bitrixCallId: string | null;

  @Column({ name: 'bitrix_user_id', type: 'int', nullable: true })
  bitrixUserId: number | null;

  @Column({ type: 'varchar', length: 16 })
  source: OriginateSource;

  @Column({ type: 'varchar', length: 16 })
  status: OriginateStatus;

  @Column({ type: 'text', nullable: true })
  error: string | null;

  /** `calls.id` of the PBX call this originate was matched to (null until matched). */
  @Column({ name: 'matched_call_id', type: 'bigint', nullable: true })
  matchedCallId: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}
