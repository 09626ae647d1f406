//! The event bus: facts out to every subscriber (role actors, the event
//! stream of the API and web UI).

use actix::prelude::*;
use tokio::sync::broadcast;

use super::in_flight::Held;
use crate::domain::Fact;

/// Publishes a fact to every subscriber. `held` keeps kiln from looking
/// settled while the fact is on its way.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub fact: Fact,
    pub held: Held,
}

/// A subscriber heard a fact. It keeps `held` until it has done what the
/// fact asks of it (a hook, until its runs are queued), so kiln does not
/// look settled in between.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Heard {
    pub fact: Fact,
    pub held: Held,
}

/// Adds a subscriber actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<Heard>);

/// Fans facts out in publication order.
pub struct EventBus {
    subscribers: Vec<Recipient<Heard>>,
    stream: broadcast::Sender<Fact>,
}

impl EventBus {
    pub fn new(stream: broadcast::Sender<Fact>) -> Self {
        Self {
            subscribers: Vec::new(),
            stream,
        }
    }
}

impl Actor for EventBus {
    type Context = Context<Self>;
}

impl Handler<Publish> for EventBus {
    type Result = ();

    fn handle(&mut self, Publish { fact, held }: Publish, _: &mut Self::Context) {
        for subscriber in &self.subscribers {
            subscriber.do_send(Heard {
                fact: fact.clone(),
                held: held.another(),
            });
        }
        // Nobody listening to the stream is fine.
        let _ = self.stream.send(fact);
    }
}

impl Handler<Subscribe> for EventBus {
    type Result = ();

    fn handle(&mut self, Subscribe(recipient): Subscribe, _: &mut Self::Context) {
        self.subscribers.push(recipient);
    }
}
