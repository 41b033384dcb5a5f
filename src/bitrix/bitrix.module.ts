import { HttpModule } from '@nestjs/axios';
import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BitrixApiService } from './bitrix-api.service';
import { BitrixIntegration } from './bitrix-integration.entity';
import { BitrixRateLimiter } from './bitrix-rate-limiter';
import { Call } from './calls/call.entity';
import { CallSyncService } from './calls/call-sync.service';
import { CallsController } from './calls/calls.controller';
import { CallsService } from './calls/calls.service';
import { CheckService } from './calls/check.service';
import { CompanyViewService } from './company-view.service';
import { RecordingFetcher } from '../pbx/recording-fetcher';
import { ResponsibleService } from '../pbx/smart-redirect/responsible.service';
import { IntegrationService } from './oauth/integration.service';
import { OAuthController } from './oauth/oauth.controller';
import { OAuthState } from './oauth/oauth-state.entity';
import { BitrixEventsService } from './originate/bitrix-events.service';
import { CallbackAuthService } from './originate/callback-auth.service';
import { OriginateController } from './originate/originate.controller';
import { Originate } from './originate/originate.entity';
import { OriginateService } from './originate/originate.service';
import { PbxDriversModule } from '../pbx/drivers/pbx-drivers.module';
import { WorkerPool } from '../database/worker-pool';
import { Binding } from './settings/binding.entity';
import { BitrixSettings } from './settings/bitrix-settings.entity';
import { KnownExtension } from './settings/known-extension.entity';
import { SettingsController } from './settings/settings.controller';
import { SettingsService } from './settings/settings.service';
import { BitrixUsersService } from './users/bitrix-users.service';
import { UsersController } from './users/users.controller';

/** The Bitrix24 side: connection (OAuth), settings, employees, call sync, click-to-call callbacks, and the one Bitrix24 client. */
@Module({
  imports: [HttpModule, PbxDriversModule, TypeOrmModule.forFeature([BitrixIntegration, OAuthState, BitrixSettings, Binding, KnownExtension, Call, Originate])],
  controllers: [OAuthController, SettingsController, UsersController, CallsController, OriginateController],
  providers: [
    WorkerPool,
    BitrixApiService,
    BitrixRateLimiter,
    IntegrationService,
    SettingsService,
    BitrixUsersService,
    CallSyncService,
    CallsService,
    CheckService,
    RecordingFetcher,
    CallbackAuthService,
    OriginateService,
    BitrixEventsService,
    CompanyViewService,
    // The responsible-operator lookup serves both Smart Redirect (its module's routes) and callbacks here.
    ResponsibleService,
  ],
  exports: [BitrixApiService, IntegrationService, CallSyncService, ResponsibleService, CompanyViewService],
})
export class BitrixModule {}
