import { HttpModule } from '@nestjs/axios';
import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BitrixApiService } from './bitrix-api.service';
import { BitrixIntegration } from './bitrix-integration.entity';
import { BitrixRateLimiter } from './bitrix-rate-limiter';
import { IntegrationService } from './oauth/integration.service';
import { OAuthController } from './oauth/oauth.controller';
import { OAuthState } from './oauth/oauth-state.entity';
import { Binding } from './settings/binding.entity';
import { BitrixSettings } from './settings/bitrix-settings.entity';
import { KnownExtension } from './settings/known-extension.entity';
import { SettingsController } from './settings/settings.controller';
import { SettingsService } from './settings/settings.service';
import { BitrixUsersService } from './users/bitrix-users.service';
import { UsersController } from './users/users.controller';

/** The Bitrix24 side: connection (OAuth), settings, employees, and the one Bitrix24 client. */
@Module({
  imports: [HttpModule, TypeOrmModule.forFeature([BitrixIntegration, OAuthState, BitrixSettings, Binding, KnownExtension])],
  controllers: [OAuthController, SettingsController, UsersController],
  providers: [BitrixApiService, BitrixRateLimiter, IntegrationService, SettingsService, BitrixUsersService],
  exports: [BitrixApiService, IntegrationService],
})
export class BitrixModule {}
