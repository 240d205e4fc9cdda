//! State machines: the `StateMachine` trait and the default key-value store.
