// What the API shows of stored records.
import type { Attachment } from '../store/attachments';
import type { Volume } from '../store/volumes';

export function volumeView(v: Volume, attachments: Attachment[]) {
  return { ...v, attachments };
}
