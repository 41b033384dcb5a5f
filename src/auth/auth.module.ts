import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { AccountsModule } from './accounts.module';
import { BearerAuthGuard, RolesGuard } from './auth.guards';
import { BearerStrategy } from './bearer.strategy';
import { MeController } from './me.controller';
import { TokenCache } from './token-cache';

/** Bearer authentication and role checks for every HTTP route (deny by default). */
@Module({
  imports: [PassportModule, AccountsModule],
  controllers: [MeController],
  providers: [TokenCache, BearerStrategy, { provide: APP_GUARD, useClass: BearerAuthGuard }, { provide: APP_GUARD, useClass: RolesGuard }],
})
export class AuthModule {}
