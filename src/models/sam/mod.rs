//! Segment Anything (SAM) encoders and prompt decoders.
