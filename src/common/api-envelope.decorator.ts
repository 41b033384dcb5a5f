import { applyDecorators, type Type } from '@nestjs/common';
import { ApiExtraModels, ApiResponse, getSchemaPath } from '@nestjs/swagger';

/**
 * Documents a success answer as it really arrives: the envelope
 * `{status: "success", code: 200, result: <model>, message: "Ok"}` around the route's model.
 */
export function ApiEnvelope(model: Type, options: { isArray?: boolean; description?: string; message?: string; status?: number } = {}): MethodDecorator & ClassDecorator {
  const ref = { $ref: getSchemaPath(model) };
  return applyDecorators(
    ApiExtraModels(model),
    ApiResponse({
      status: options.status ?? 200,
      description: options.description ?? 'Success, in the envelope',
      schema: {
        type: 'object',
        required: ['status', 'code', 'result', 'message'],
        properties: {
          status: { type: 'string', enum: ['success'] },
          code: { type: 'integer', example: options.status ?? 200 },
          result: options.isArray ? { type: 'array', items: ref } : ref,
          message: { type: 'string', example: options.message ?? 'Ok' },
        },
      },
    }),
  );
}
