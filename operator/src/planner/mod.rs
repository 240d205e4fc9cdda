//! PURE planner: `plan(desired, observed) -> Step`, one safe step at a time.
