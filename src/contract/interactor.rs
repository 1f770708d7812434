//! CVAT interactor (SAM) request and reply types.
