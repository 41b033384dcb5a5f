import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

export type CallDirection = 'inbound' | 'outbound';
export type CallStatus = 'ringing' | 'answered' | 'no_answer' | 'busy' | 'failed' | 'cancelled';
export type SyncState = 'pending' | 'synced' | 'failed' | 'paused';
/** Bitrix24 steps whose outcome must be known before they are sent again (create at most once). */
export type CallStep = 'dedupe' | 'contact' | 'deal' | 'register' | 'finish' | 'lookup' | 'task' | 'record';

/**
 * One physical PBX call: what the PBX said so far and how far it is mirrored into Bitrix24. The
 * row is the outbox: the worker derives the next Bitrix24 steps from it, so a crash or a restart
 * loses nothing. `sent_steps` are steps sent whose outcome is not known yet (checked before any
 * resend); `done_steps` the ones Bitrix24 confirmed.
 */
@Entity({ name: 'calls' })
export class Call {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;

  @Column({ name: 'company_id', type: 'int' })
  companyId: number;

  @Column({ name: 'call_id', type: 'varchar', length: 128 })
  callId: string;

  @Column({ type: 'varchar', length: 8 })
  direction: CallDirection;

  /** E.164 when the number could be placed, else its digits. */
  @Column({ name: 'phone_number', type: 'varchar', length: 32 })
  phoneNumber: string;

  @Column({ name: 'phone_raw', type: 'varchar', length: 64 })
  phoneRaw: string;

  @Column({ name: 'line_number', type: 'varchar', length: 64, nullable: true })
  lineNumber: string | null;

  @Column({ type: 'varchar', length: 16 })
  status: CallStatus;

  @Column({ name: 'sync_state', type: 'varchar', length: 16 })
  syncState: SyncState;

  /** The first operator named by the call's first event: whose binding registers it. */
  @Column({ name: 'first_sip_phone', type: 'varchar', length: 40, nullable: true })
  firstSipPhone: string | null;

  @Column({ type: 'text', array: true, default: () => "'{}'" })
  rung: string[];

  /** Operators who answered, in order: the last one holds the call (transfers append). */
  @Column({ name: 'answered_by', type: 'text', array: true, default: () => "'{}'" })
  answeredBy: string[];

  @Column({ name: 'handled_by', type: 'varchar', length: 40, nullable: true })
  handledBy: string | null;

  @Column({ name: 'started_at', type: 'timestamptz' })
  startedAt: Date;

  /** The UTC offset the PBX reported the start in: CALL_START_DATE is sent with it. */
  @Column({ name: 'start_offset_min', type: 'smallint' })
  startOffsetMin: number;

  @Column({ name: 'ringing_seen', type: 'boolean' })
  ringingSeen: boolean;

  @Column({ name: 'answered_at', type: 'timestamptz', nullable: true })
  answeredAt: Date | null;

  @Column({ name: 'ended_at', type: 'timestamptz', nullable: true })
  endedAt: Date | null;

  @Column({ type: 'int', nullable: true })
  duration: number | null;

  @Column({ name: 'recording_url', type: 'text', nullable: true })
  recordingUrl: string | null;

  @Column({ name: 'bitrix_call_id', type: 'varchar', length: 100, nullable: true })
  bitrixCallId: string | null;

  /** Started by click-to-call: Bitrix24 registered it, the service only finishes it. */
  @Column({ name: 'click_to_call', type: 'boolean' })
  clickToCall: boolean;

  /** The portal the call is mirrored to once it was first sent (a paused call resumes only there). */
  @Column({ name: 'member_id', type: 'varchar', length: 64, nullable: true })
  memberId: string | null;

  @Column({ name: 'register_user_id', type: 'int', nullable: true })
  registerUserId: number | null;

  @Column({ name: 'crm_entity_type', type: 'varchar', length: 16, nullable: true })
  crmEntityType: string | null;

  @Column({ name: 'crm_entity_id', type: 'int', nullable: true })
  crmEntityId: number | null;

  /** The deal created for an unknown number when settings name a pipeline. */
  @Column({ name: 'deal_id', type: 'int', nullable: true })
  dealId: number | null;

  @Column({ name: 'shown_to', type: 'int', array: true, default: () => "'{}'" })
  shownTo: number[];

  @Column({ name: 'sent_steps', type: 'text', array: true, default: () => "'{}'" })
  sentSteps: CallStep[];

  @Column({ name: 'done_steps', type: 'text', array: true, default: () => "'{}'" })
  doneSteps: CallStep[];

  @Column({ name: 'task_id', type: 'int', nullable: true })
  taskId: number | null;

  /** Who the missed-call task goes to: the CRM record's responsible, looked up before the task is created. */
  @Column({ name: 'task_responsible_id', type: 'int', nullable: true })
  taskResponsibleId: number | null;

  /** Bumped by every event that changes the call: a worker's decision made on an older version does not stand. */
  @Column({ name: 'facts_version', type: 'int' })
  factsVersion: number;

  @Column({ type: 'int' })
  attempts: number;

  @Column({ name: 'last_error', type: 'text', nullable: true })
  lastError: string | null;

  @Column({ name: 'next_attempt_at', type: 'timestamptz' })
  nextAttemptAt: Date;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;
}
