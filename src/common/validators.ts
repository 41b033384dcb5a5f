import { ValidateIf } from 'class-validator';

/**
 * Validate the field whenever it is in the body, null included: for optional fields that may not
 * be null (class-validator's @IsOptional would let null through to a NOT NULL column).
 */
export const Present = (): PropertyDecorator => ValidateIf((_: object, v: unknown) => v !== undefined);

/** Validate the field when it is present and not null: for optional, nullable fields. */
export const Given = (): PropertyDecorator => ValidateIf((_: object, v: unknown) => v !== undefined && v !== null);
