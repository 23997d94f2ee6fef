// The CSI names qosd is known by, fixed for good (DESIGN.md, fixed interfaces): the driver name
// is written into CSINode, PVs, kubelet's paths and every VolumeAttributesClass; the topology key
// becomes a Node label and every PV's node affinity.
export const DRIVER_NAME = 'nvme.qosd.io';
export const TOPOLOGY_KEY = 'topology.qosd.io/node';
/** The CSI spec versions served, as kubelet's registration asks for them (it takes any 1.x). */
export const CSI_VERSIONS = ['1.0.0'];
