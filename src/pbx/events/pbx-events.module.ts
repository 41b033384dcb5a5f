import { Module } from '@nestjs/common';
import { CallIngestService } from './call-ingest.service';
import { PbxEventsController } from './pbx-events.controller';

/** `POST /pbx/events`: the PBX's call events in, stored for call sync. */
@Module({
  controllers: [PbxEventsController],
  providers: [CallIngestService],
})
export class PbxEventsModule {}
