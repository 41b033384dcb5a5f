import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BitrixIntegration } from '../../bitrix/bitrix-integration.entity';
import { BitrixModule } from '../../bitrix/bitrix.module';
import { Binding } from '../../bitrix/settings/binding.entity';
import { BitrixSettings } from '../../bitrix/settings/bitrix-settings.entity';
import { ResponsibleController } from './responsible.controller';
import { ResponsibleService } from './responsible.service';
import { SmartRedirectController } from './smart-redirect.controller';
import { SmartRedirectService } from './smart-redirect.service';

/** Smart Redirect (SPEC §8): the responsible-operator lookup, for the PBX and for callbacks. */
@Module({
  imports: [BitrixModule, TypeOrmModule.forFeature([BitrixIntegration, BitrixSettings, Binding])],
  controllers: [ResponsibleController, SmartRedirectController],
  providers: [ResponsibleService, SmartRedirectService],
  exports: [ResponsibleService],
})
export class SmartRedirectModule {}
