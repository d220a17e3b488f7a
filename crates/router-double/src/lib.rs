//! A test double of skupper-router's management interface (filled in next).
