import { HttpModule, HttpService } from '@nestjs/axios';
import { Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Config } from '../../config/config';
import { AmiDriver } from './ami.driver';
import { HttpDriver } from './http.driver';
import { PBX_DRIVER, type PbxDriver } from './pbx-driver';

/** The configured PBX driver (`PBX_DRIVER`: ami or http), injected as PBX_DRIVER. */
@Module({
  imports: [HttpModule],
  providers: [
    {
      provide: PBX_DRIVER,
      inject: [ConfigService, HttpService],
      useFactory: (config: ConfigService<Config, true>, http: HttpService): PbxDriver => {
        const pbx = config.get('pbx', { infer: true });
        return pbx.driver === 'ami' ? new AmiDriver(pbx.ami) : new HttpDriver(http, pbx.originateUrl, config.get('app', { infer: true }).appKey);
      },
    },
  ],
  exports: [PBX_DRIVER],
})
export class PbxDriversModule {}
