//! CVAT tracker request and reply types.
