import { Global, Module } from '@nestjs/common';
import { ChangeListener } from './change-listener';

/** The HTTP application's one LISTEN connection, shared by every in-process copy (the account CLI has none). */
@Global()
@Module({ providers: [ChangeListener], exports: [ChangeListener] })
export class ChangeListenerModule {}
