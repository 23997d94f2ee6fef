// Every failure the service reports maps to one clear status (the TopoLVM lvmd way), so the API,
// the flex driver and qosctl can all say exactly what went wrong.
export type ErrorCode =
  | 'InvalidArgument' // bad input: nothing was changed
  | 'NotFound'
  | 'AlreadyExists'
  | 'InUse' // the volume is attached; refusing to delete it
  | 'FailedPrecondition' // the node is not in a state that allows this (no pod cgroup, a foreign mount)
  | 'ResourceExhausted' // admission refused: the pool cannot deliver the guarantee
  | 'PermissionDenied' // the caller may not reach this volume (another namespace's, a CSI volume through flex)
  | 'Internal';

const STATUS: Record<ErrorCode, number> = {
  InvalidArgument: 400,
  NotFound: 404,
  AlreadyExists: 409,
  InUse: 409,
  FailedPrecondition: 412,
  ResourceExhausted: 507,
  PermissionDenied: 403,
  Internal: 500,
};

export class QosdError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }

  get status(): number {
    return STATUS[this.code];
  }
}

export const invalid = (message: string): QosdError => new QosdError('InvalidArgument', message);
export const notFound = (message: string): QosdError => new QosdError('NotFound', message);

/** Any thrown value as a QosdError (unknown failures are Internal, with their message kept). */
export function asQosdError(err: unknown): QosdError {
  if (err instanceof QosdError) return err;
  return new QosdError('Internal', err instanceof Error ? err.message : String(err));
}
