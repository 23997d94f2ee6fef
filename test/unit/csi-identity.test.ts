// The CSI Identity and registration answers, without a socket: Probe is FAILED_PRECONDITION with
// the reason while qosd cannot serve, and kubelet's registration outcome is kept and logged.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { status } from '@grpc/grpc-js';
import { CsiIdentity } from '../../src/csi/identity';
import { CsiRegistration } from '../../src/csi/registration';
import { CsiError, toServiceError } from '../../src/csi/status';
import { QosdError } from '../../src/model/errors';

describe('CSI Identity', () => {
  it('probes ready while qosd can serve, FAILED_PRECONDITION naming why when it cannot', () => {
    let problem: string | undefined;
    const identity = new CsiIdentity({ version: '9.9.9', problem: () => problem });
    expect(identity.probe()).toEqual({ ready: { value: true } });
    problem = 'it is shutting down';
    try {
      identity.probe();
      expect.fail('probe answered while shutting down');
    } catch (err) {
      const e = toServiceError(err);
      expect(e.code).toBe(status.FAILED_PRECONDITION);
      expect(e.details).toBe('qosd cannot serve: it is shutting down');
    }
    expect(identity.getPluginInfo()).toEqual({ name: 'nvme.qosd.io', vendor_version: '9.9.9', manifest: {} });
  });

  it("maps qosd's error codes to the spec's status codes, message kept, details empty of anything else", () => {
    const cases: [QosdError | CsiError, status][] = [
      [new QosdError('InvalidArgument', 'volume_id: missing'), status.INVALID_ARGUMENT],
      [new QosdError('NotFound', 'x'), status.NOT_FOUND],
      [new QosdError('AlreadyExists', 'x'), status.ALREADY_EXISTS],
      [new QosdError('InUse', 'x'), status.FAILED_PRECONDITION],
      [new QosdError('FailedPrecondition', 'x'), status.FAILED_PRECONDITION],
      [new QosdError('ResourceExhausted', 'x'), status.RESOURCE_EXHAUSTED],
      [new QosdError('Internal', 'x'), status.INTERNAL],
      [new CsiError(status.OUT_OF_RANGE, 'capacity_range: x'), status.OUT_OF_RANGE],
    ];
    for (const [err, code] of cases) {
      const e = toServiceError(err);
      expect(e.code).toBe(code);
      expect(e.details).toBe(err.message);
    }
    expect(toServiceError(new Error('boom')).code).toBe(status.INTERNAL);
  });
});

describe('CSI registration with kubelet', () => {
  it('offers the CSI socket as the endpoint, and keeps what kubelet answered', () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const reg = new CsiRegistration('/run/qosd/csi.sock', log);
    expect(reg.getInfo()).toEqual({ type: 'CSIPlugin', name: 'nvme.qosd.io', endpoint: '/run/qosd/csi.sock', supported_versions: ['1.0.0'] });
    expect(reg.last).toBeUndefined();
    reg.notifyRegistrationStatus({ plugin_registered: false, error: 'driver name mismatch' });
    expect(reg.last).toMatchObject({ registered: false, error: 'driver name mismatch' });
    reg.notifyRegistrationStatus({ plugin_registered: true, error: '' });
    expect(reg.last).toMatchObject({ registered: true, error: '' });
    expect(lines.join('')).toContain('kubelet refused to register the CSI driver');
    expect(lines.join('')).toContain('kubelet registered the CSI driver');
  });
});
