import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BitrixIntegration } from '../../bitrix/bitrix-integration.entity';
import { BitrixModule } from '../../bitrix/bitrix.module';
import { Binding } from '../../bitrix/settings/binding.entity';
import { BitrixSettings } from '../../bitrix/settings/bitrix-settings.entity';
import { ResponsibleController } from './responsible.controller';
import { SmartRedirectController } from './smart-redirect.controller';
import { SmartRedirectService } from './smart-redirect.service';

/** Smart Redirect (SPEC §8): the PBX's routes; the lookup itself (ResponsibleService) is provided by BitrixModule. */
@Module({
  imports: [BitrixModule, TypeOrmModule.forFeature([BitrixIntegration, BitrixSettings, Binding])],
  controllers: [ResponsibleController, SmartRedirectController],
  providers: [SmartRedirectService],
})
export class SmartRedirectModule {}
