import { Module } from '@nestjs/common';
import { BitrixModule } from '../../bitrix/bitrix.module';
import { ResponsibleController } from './responsible.controller';
import { SmartRedirectController } from './smart-redirect.controller';
import { SmartRedirectService } from './smart-redirect.service';

/** Smart Redirect (SPEC §8): the PBX's routes; the lookup itself (ResponsibleService) and the company view are provided by BitrixModule. */
@Module({
  imports: [BitrixModule],
  controllers: [ResponsibleController, SmartRedirectController],
  providers: [SmartRedirectService],
})
export class SmartRedirectModule {}
