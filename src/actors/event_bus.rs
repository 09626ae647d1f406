//! The event bus: facts out to every subscriber (role actors, the event
//! stream of the API and web UI).

use actix::prelude::*;
use tokio::sync::broadcast;

use crate::domain::Fact;

/// Publishes a fact to every subscriber.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Publish(pub Fact);

/// Adds a subscriber actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<Fact>);

/// Fans facts out in publication order.
pub struct EventBus {
    subscribers: Vec<Recipient<Fact>>,
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

    fn handle(&mut self, Publish(fact): Publish, _: &mut Self::Context) {
        for subscriber in &self.subscribers {
            subscriber.do_send(fact.clone());
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
