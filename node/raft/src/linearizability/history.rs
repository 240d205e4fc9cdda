//! Records a history as clients run, stamping every call and return from one logical
//! clock, so the checker sees exactly the real-time order the recorder observed. Pure: the
//! caller decides when things happen (and wraps it in a lock if clients are threads).

use super::{KvInput, KvOutput, NO_RETURN, Operation};

/// Outputs that can say "the client never learned what happened".
pub trait UnknownOutput {
    /// An output the model accepts in every state. With `ret = NO_RETURN`, as
    /// [`HistoryRecorder::fail_unknown`] records it, the operation may have taken effect
    /// at any time after its call with any result, or not at all.
    fn unknown() -> Self;
}

/// Names an invoked operation until it is completed. Deliberately neither `Clone` nor
/// `Copy`: completing consumes it, so an operation cannot be completed twice.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct OpId(usize);

/// Builds a history from invocations and completions, in the order they are reported.
#[derive(Clone, Debug)]
pub struct HistoryRecorder<I = KvInput, O = KvOutput> {
    now: u64,
    ops: Vec<Operation<I, Option<O>>>,
}

impl<I, O> Default for HistoryRecorder<I, O> {
    fn default() -> Self {
        Self {
            now: 0,
            ops: Vec::new(),
        }
    }
}

impl<I, O> HistoryRecorder<I, O> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` is about to send `input`. Call it before the request leaves,
    /// or the recorded interval may miss the moment the operation took effect.
    #[must_use = "the operation must later be completed or failed"]
    pub fn invoke(&mut self, client: u64, input: I) -> OpId {
        let call = self.tick();
        self.ops.push(Operation {
            client,
            call,
            ret: NO_RETURN,
            input,
            output: None,
        });
        OpId(self.ops.len() - 1)
    }

    /// Records the response to `id`. Call it after the response arrived.
    ///
    /// # Panics
    ///
    /// If `id` came from another recorder that had more operations.
    pub fn complete(&mut self, id: OpId, output: O) {
        let ret = self.tick();
        let op = &mut self.ops[id.0];
        op.ret = ret;
        op.output = Some(output);
    }

    /// Number of operations invoked so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn tick(&mut self) -> u64 {
        let now = self.now;
        self.now += 1;
        now
    }
}

impl<I, O: UnknownOutput> HistoryRecorder<I, O> {
    /// Records that `id` timed out or failed ambiguously: it may or may not take effect,
    /// now or at any later time, so it never returns.
    pub fn fail_unknown(&mut self, id: OpId) {
        let op = &mut self.ops[id.0];
        op.ret = NO_RETURN;
        op.output = Some(O::unknown());
    }

    /// The history, in invocation order. Operations still in flight are unknown: the
    /// client would not know their fate either.
    pub fn finish(self) -> Vec<Operation<I, O>> {
        self.ops
            .into_iter()
            .map(|op| {
                let (ret, output) = match op.output {
                    Some(output) => (op.ret, output),
                    None => (NO_RETURN, O::unknown()),
                };
                Operation {
                    client: op.client,
                    call: op.call,
                    ret,
                    input: op.input,
                    output,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_calls_and_returns_from_one_clock() {
        let mut rec = HistoryRecorder::new();
        let a = rec.invoke(1, KvInput::put("x", "1"));
        let b = rec.invoke(2, KvInput::get("x"));
        rec.complete(b, KvOutput::Value(None));
        rec.complete(a, KvOutput::Ok);
        assert_eq!(rec.len(), 2);
        let h = rec.finish();
        assert_eq!(
            h,
            [
                Operation {
                    client: 1,
                    call: 0,
                    ret: 3,
                    input: KvInput::put("x", "1"),
                    output: KvOutput::Ok
                },
                Operation {
                    client: 2,
                    call: 1,
                    ret: 2,
                    input: KvInput::get("x"),
                    output: KvOutput::Value(None)
                },
            ]
        );
    }

    #[test]
    fn failed_and_pending_operations_become_unknown_and_never_return() {
        let mut rec: HistoryRecorder = HistoryRecorder::new();
        assert!(rec.is_empty());
        let a = rec.invoke(1, KvInput::put("x", "1"));
        let _pending = rec.invoke(2, KvInput::delete("x"));
        rec.fail_unknown(a);
        let c = rec.invoke(1, KvInput::get("x"));
        rec.complete(c, KvOutput::Value(None));
        let h = rec.finish();
        assert_eq!((h[0].ret, &h[0].output), (NO_RETURN, &KvOutput::Unknown));
        assert_eq!((h[1].ret, &h[1].output), (NO_RETURN, &KvOutput::Unknown));
        assert_eq!((h[2].call, h[2].ret), (2, 3));
    }
}
