// qosd's error codes as the gRPC status codes the CSI spec mandates. The message names the field
// or the state that is wrong; `details` stays empty, as the spec requires.
import { status, type ServiceError } from '@grpc/grpc-js';
import { Metadata } from '@grpc/grpc-js';
import { asQosdError, type ErrorCode } from '../model/errors';
import { forKubelet } from '../util/kubelet-text';

const CODES: Record<ErrorCode, status> = {
  InvalidArgument: status.INVALID_ARGUMENT,
  NotFound: status.NOT_FOUND,
  AlreadyExists: status.ALREADY_EXISTS,
  InUse: status.FAILED_PRECONDITION,
  FailedPrecondition: status.FAILED_PRECONDITION,
  ResourceExhausted: status.RESOURCE_EXHAUSTED,
  PermissionDenied: status.PERMISSION_DENIED,
  Internal: status.INTERNAL,
};

export class CsiError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

/** Any thrown value as the status a CSI client gets (kubelet among them: no "%" in the message, see forKubelet). */
export function toServiceError(err: unknown): ServiceError {
  const e = err instanceof CsiError ? err : { code: CODES[asQosdError(err).code], message: asQosdError(err).message };
  const { code } = e;
  const message = forKubelet(e.message);
  return Object.assign(new Error(message), { code, details: message, metadata: new Metadata() });
}
