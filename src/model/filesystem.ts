// The filesystems qosd formats volumes with.
export type FsType = 'ext4' | 'xfs';
