import { Injectable, type ArgumentMetadata, type PipeTransform, type Type } from '@nestjs/common';
import { createValidationPipe } from '../../common/validation.pipe';

/**
 * Validates a public callback's body with the DTO given, ignoring unknown keys: Bitrix24 adds
 * keys to its payloads and never retries (SPEC §7). The route's parameter is typed as a plain
 * object so the global (strict) pipe leaves it alone.
 */
@Injectable()
export class LenientBodyPipe implements PipeTransform {
  private readonly pipe = createValidationPipe({ ignoreUnknown: true });

  constructor(private readonly dto: Type) {}

  transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    return this.pipe.transform(value, { ...metadata, metatype: this.dto }) as Promise<unknown>;
  }
}
