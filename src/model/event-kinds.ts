// Every kind of entry the event log holds (store/events.ts). The list is closed, so a new kind is
// added here and in docs/api.md's table, which a unit test keeps equal to this list.

export const EVENT_KINDS = [
  // a volume's life
  'volume-create-started', 'volume-created', 'volume-create-rolled-back', 'volume-create-undone',
  'volume-resize-started', 'volume-resized',
  'volume-delete-started', 'volume-deleted',
  'qos-changed', 'owner-claimed', 'owner-changed',
  // its attachments
  'attach-started', 'attached', 'attach-rolled-back', 'attach-undone',
  'detach-started', 'detached', 'detach-failed', 'pod-vanished',
  // repair, and what repair would not do
  'mount-repaired', 'mount-wrong-device', 'mount-missing',
  'device-mismatch', 'device-refound', 'device-refind-failed',
  // its pool
  'pool-initialized', 'pool-calibrated',
] as const;

export type EventKind = (typeof EVENT_KINDS)[number];
