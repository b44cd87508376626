// Package chain runs event chains: ordered steps (order placed -> payment ->
// inventory -> shipping -> confirmation email) with per-step retries and
// timeouts, a total timeout, compensation of completed steps in reverse order
// when a step fails for good, and state kept in a durable Store so that a
// crashed coordinator resumes where it stopped.
//
// # Model: orchestration over the bus
//
// A Coordinator owns a chain Definition. It starts instances, and for each
// step publishes a command event to the step's topic; a Worker — in this
// process or in another service — subscribes to that topic, runs the step's
// handler and publishes a result event to the chain's result topic; the
// Coordinator consumes the results and decides what happens next: the next
// step, a retry after a backoff, or compensation. Steps never call each
// other, so a step can move to another service without changing the chain.
// The retry policy, the timeouts and the compensation order live in one place,
// the Definition, as in AWS Step Functions or Azure Logic Apps.
//
// # Durability and exactly-once steps
//
// The instance (input, outputs, current step, attempt, status, errors) is
// saved in the Store after every transition, with optimistic concurrency on
// its revision, before the command that follows it is published. A
// Coordinator that starts resumes every unfinished instance: an attempt that
// was in flight is dispatched again, a pending retry waits for its time.
//
// A step is idempotent by (instance id, step name): the Worker claims the
// pair in the Store before running the handler and records the output when
// the handler succeeds. A command delivered again — a redelivery, a retry
// after an attempt timed out, a re-dispatch after a crash — finds the step
// done and answers with the recorded output without running the handler. A
// crashed worker's claim expires after WorkerOptions.Lease; then another
// worker runs the step. So a step's handler completes once per instance;
// only an attempt that failed or was cut off by a crash may run again.
// Compensations are claimed the same way, by (instance id, step name,
// compensation).
//
// # Failure
//
// A failed attempt is retried by the step's RetryPolicy unless its error
// class is non-retryable (see Fail, ClassOf). When a step fails for good or
// the chain's total timeout passes, the compensations of the completed steps
// run in reverse order, each with the step's retry policy; a compensation
// that fails for good is recorded and the next one still runs. The instance
// ends Completed, Compensated, or CompensationFailed, and Instance.Err joins
// every error with errors.Join.
package chain
