//! One watch of a child kind feeding two relations of a controller: children that have a
//! controller go to `owns_stream` (their owner is reconciled), orphans go to
//! `watches_stream` (every workload whose selector matches them is reconciled, so one can
//! adopt them). One watch and one reflector store serve both.

use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use kube::runtime::watcher;
use tokio::task::JoinHandle;

/// Items kept between the watch and a relation that has not taken them yet.
const BUFFER: usize = 256;

/// Stops the task that drives the split watch when dropped.
pub struct SplitTask(JoinHandle<()>);

impl Drop for SplitTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Streams for the two relations.
pub struct Split<K> {
    /// Objects with `is_controlled`, and the watch's errors.
    pub controlled: mpsc::Receiver<Result<K, watcher::Error>>,
    /// Objects without.
    pub orphans: mpsc::Receiver<Result<K, watcher::Error>>,
    pub task: SplitTask,
}

/// Drives `stream` in a task and hands each object to one of two streams. A relation that
/// does not keep up holds the watch back (bounded buffers), and once either stream is
/// dropped the task ends.
pub fn split<K, S>(stream: S, is_controlled: impl Fn(&K) -> bool + Send + 'static) -> Split<K>
where
    K: Send + 'static,
    S: Stream<Item = Result<K, watcher::Error>> + Send + 'static,
{
    let (mut tx_controlled, controlled) = mpsc::channel(BUFFER);
    let (mut tx_orphans, orphans) = mpsc::channel(BUFFER);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            let sent = match item {
                Ok(obj) if !is_controlled(&obj) => tx_orphans.send(Ok(obj)).await,
                other => tx_controlled.send(other).await,
            };
            if sent.is_err() {
                return;
            }
        }
    });
    Split {
        controlled,
        orphans,
        task: SplitTask(task),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn objects_go_to_exactly_one_relation() {
        let input = futures::stream::iter((0..10).map(Ok::<i32, watcher::Error>));
        let split = split(input, |n| n % 3 == 0);
        let controlled: Vec<i32> = split.controlled.map(|r| r.expect("ok")).collect().await;
        let orphans: Vec<i32> = split.orphans.map(|r| r.expect("ok")).collect().await;
        assert_eq!(controlled, vec![0, 3, 6, 9]);
        assert_eq!(orphans, vec![1, 2, 4, 5, 7, 8]);
    }
}
