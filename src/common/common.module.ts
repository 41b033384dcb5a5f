import { Global, Module } from '@nestjs/common';
import { SecretBox } from './secret-box';

/** Providers every feature module uses. */
@Global()
@Module({ providers: [SecretBox], exports: [SecretBox] })
export class CommonModule {}
