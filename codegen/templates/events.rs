/// Publishes the events of package `{{ package }}`: `Events::new(&connection)` standalone, or
/// `ctx.emit::<Events>()` inside a handler.
#[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]
#[derive(__rt::Debug, __rt::Clone)]
pub struct Events {
    publisher: __rt::EventPublisher,
}

#[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]
impl Events {
    /// A publisher over `connection`.
    #[must_use]
    pub fn new(connection: &__rt::Connection) -> Self {
        Self { publisher: __rt::EventPublisher::new(connection, &{{ private }}::EVENTS) }
    }
{%- for e in events %}

{{ e.head.at("    ") }}    pub fn {{ e.method }}(&self, event: &{{ e.ty }}) -> __rt::Publish {
        self.publisher.publish({{ loop.index0 }}, __rt::encode_event(event))
    }
{%- endfor %}
}

impl __rt::EventSet for Events {
    fn descriptor() -> &'static __rt::EventsDescriptor {
        &{{ private }}::EVENTS
    }

    fn from_publisher(publisher: __rt::EventPublisher) -> Self {
        Self { publisher }
    }
}
