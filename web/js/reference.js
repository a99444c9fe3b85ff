// Reference values of the contract (API.md "Channels") and of the city (DESIGN.md: Guangzhou's 11 districts).
export const DISTRICTS = ['440103', '440104', '440105', '440106', '440111', '440112', '440113', '440114', '440115', '440117', '440118'];
export const NETWORKS = ['video', 'police', 'gov', 'interconnect'];
export const CLASSES = [1, 2, 3];
export const STATUSES = ['online', 'offline', 'fault'];

/** Plot colours by channel class (also used by the legend and the table badges). */
export const CLASS_COLOURS = { 1: '#c0392b', 2: '#1f6fb2', 3: '#2e8b57' };

/** Guangzhou's extent, the plot's frame when the result set is empty. */
export const CITY_BOUNDS = { minLon: 112.95, maxLon: 114.05, minLat: 22.55, maxLat: 23.95 };
