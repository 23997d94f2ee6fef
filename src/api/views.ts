// What the API shows of stored records.
import type { Attachment } from '../store/attachments';
import type { Volume } from '../store/volumes';
import type { Figures } from '../model/qos';

/** A volume with its attachments and the limits in force now (its max, tightened by the controller). */
export function volumeView(v: Volume, attachments: Attachment[], effective: Figures) {
  return { ...v, attachments, effective: { max: effective } };
}
