import { Column, CreateDateColumn, Entity, JoinColumn, ManyToOne, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import { User } from './user.entity';

/**
 * Laravel Sanctum's table, column for column, so tokens issued by either side are interchangeable:
 * the plaintext `<id>|<secret>` is shown once; only the SHA-256 hex of the secret is stored.
 */
@Entity({ name: 'personal_access_tokens' })
export class PersonalAccessToken {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ name: 'tokenable_type', type: 'varchar', length: 255, default: 'user' })
  tokenableType: string;

  @Column({ name: 'tokenable_id', type: 'int' })
  tokenableId: number;

  @ManyToOne(() => User, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'tokenable_id', foreignKeyConstraintName: 'fk_personal_access_tokens_user' })
  user?: User;

  @Column({ type: 'varchar', length: 255 })
  name: string;

  @Column({ type: 'varchar', length: 64, unique: true })
  token: string;

  @Column({ type: 'text', nullable: true })
  abilities: string | null;

  @Column({ name: 'last_used_at', type: 'timestamptz', nullable: true })
  lastUsedAt: Date | null;

  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true })
  expiresAt: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;
}
