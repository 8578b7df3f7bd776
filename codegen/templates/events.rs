/// Publishes the events of package `{{ package }}`: `Events::new(&connection)` standalone, or
/// `ctx.emit::<Events>()` inside a handler.
#[derive(::core::fmt::Debug, ::core::clone::Clone)]
pub struct Events {
    publisher: {{ rt }}::codegen::EventPublisher,
}

impl Events {
    /// A publisher over `connection`.
    pub fn new(connection: &{{ rt }}::Connection) -> Self {
        Self { publisher: {{ rt }}::codegen::EventPublisher::new(connection, &{{ private }}::EVENTS) }
    }
{%- for e in events %}

    {%- for d in e.docs %}{{ d }}{% endfor %}
    {%- for a in e.allows %}{{ a }}{% endfor %}
    pub fn {{ e.method }}(&self, event: &{{ e.ty }}) -> {{ rt }}::codegen::Publish {
        self.publisher.publish({{ loop.index0 }}usize, {{ rt }}::codegen::encode_event(event))
    }
{%- endfor %}
}

impl {{ rt }}::codegen::EventSet for Events {
    fn from_connection(connection: &{{ rt }}::Connection) -> Self {
        Self::new(connection)
    }
}
