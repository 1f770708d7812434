//! `nuclio-ort bench`: a load generator for any CVAT detector function.
