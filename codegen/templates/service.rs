{%- if server %}
{{ s.docs.at("") }}///
/// Implement it with plain `async fn`s and serve it with [`{{ s.server }}`] on a `Host`.
#[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]
pub trait {{ s.trait_name }}: __rt::Send + __rt::Sync + 'static {
{%- for m in s.members %}

{{ m.head.at("    ") }}    fn {{ m.name }}(
        &self,
        ctx: &__rt::Context,
{%- for p in m.args %}
        {{ p.name }}: {{ p.ty }},
{%- endfor %}
    ) -> impl __rt::HandlerFuture<{{ m.ok }}, {{ m.err }}>;
{%- endfor %}
}

/// Serves a [`{{ s.trait_name }}`] implementation: give it to a `natsgen::Host`.
#[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]
pub struct {{ s.server }}<__Impl> {
    inner: __rt::Arc<__Impl>,
}

#[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]
impl<__Impl: {{ s.trait_name }}> {{ s.server }}<__Impl> {
    /// Wraps an implementation.
    #[must_use]
    pub fn new(inner: __Impl) -> Self {
        Self { inner: __rt::Arc::new(inner) }
    }

    /// Wraps an implementation that is shared with other code.
    #[must_use]
    pub fn from_arc(inner: __rt::Arc<__Impl>) -> Self {
        Self { inner }
    }
}

impl<__Impl> __rt::Debug for {{ s.server }}<__Impl> {
    fn fmt(&self, f: &mut __rt::fmt::Formatter<'_>) -> __rt::fmt::Result {
        f.write_str({{ s.server_lit }})
    }
}

impl<__Impl: {{ s.trait_name }}> __rt::Service for {{ s.server }}<__Impl> {
    fn descriptor(&self) -> &'static __rt::ServiceDescriptor {
        &{{ private }}::{{ s.descriptor }}
    }
{% if s.members.is_empty() %}
    fn call(
        &self,
        endpoint: usize,
        _ctx: __rt::Context,
        _payload: __rt::Bytes,
    ) -> __rt::BoxFuture<__rt::Result<__rt::Bytes, __rt::ServiceError>> {
        __rt::Box::pin(__rt::unknown_endpoint(endpoint))
    }
{%- else %}
    fn call(
        &self,
        endpoint: usize,
        ctx: __rt::Context,
        {% if !s.uses_payload %}_{% endif %}payload: __rt::Bytes,
    ) -> __rt::BoxFuture<__rt::Result<__rt::Bytes, __rt::ServiceError>> {
        let inner = __rt::Clone::clone(&self.inner);
        match endpoint {
{%- for m in s.members %}
            {{ loop.index0 }} => __rt::respond(async move {
    {%- if m.is_timer %}
                __Impl::{{ m.name }}(&inner, &ctx).await
    {%- else if m.is_handler %}
                let event = {{ m.decode_event }};
                __Impl::{{ m.name }}(&inner, &ctx, event).await
    {%- else if m.args.is_empty() %}
                let _: {{ private }}::{{ m.params_struct }} = __rt::decode_params(&payload)?;
                __Impl::{{ m.name }}(&inner, &ctx).await
    {%- else %}
                let p: {{ private }}::{{ m.params_struct }} = __rt::decode_params(&payload)?;
                __Impl::{{ m.name }}(&inner, &ctx{% for a in m.args %}, p.{{ a.name }}{% endfor %}).await
    {%- endif %}
            }),
{%- endfor %}
            _ => __rt::Box::pin(__rt::unknown_endpoint(endpoint)),
        }
    }
{%- endif %}
}
{%- endif %}
{%- if client %}

/// The calls of `{{ s.wire }}` as a trait, so callers can be generic over it and tests can
/// substitute their own implementation. [`{{ s.client }}`] implements it.
#[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]
pub trait {{ s.api }}: __rt::Send + __rt::Sync {
{%- for m in s.calls %}

{{ m.head.at("    ") }}    fn {{ m.name }}(
        &self,
{%- for p in m.args %}
        {{ p.name }}: {{ p.ty }},
{%- endfor %}
        options: __rt::CallOptions,
    ) -> impl __rt::CallFuture<{{ m.ok }}, {{ m.err }}>;
{%- endfor %}
}

{{ s.docs.at("") }}///
/// A typed client: each method returns a call builder; `.await` it, or set per-call options first.
#[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]
#[derive(__rt::Debug, __rt::Clone)]
pub struct {{ s.client }} {
    core: __rt::ClientCore,
}

#[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]
impl {{ s.client }} {
    /// A client for `{{ s.wire }}` over `connection`.
    #[must_use]
    pub fn new(connection: &__rt::Connection) -> Self {
        Self { core: __rt::ClientCore::new(connection, &{{ private }}::{{ s.descriptor }}) }
    }

    /// The same client with other defaults (retries) than its connection's.
    #[must_use]
    pub fn with_options(self, options: __rt::ClientOptions) -> Self {
        Self { core: self.core.with_options(options) }
    }

    /// The same client, retrying calls that certainly did not run (no responders, busy) this way.
    #[must_use]
    pub fn with_retry(self, retry: __rt::CallRetry) -> Self {
        Self { core: self.core.with_retry(retry) }
    }
{%- for m in s.calls %}

{{ m.head.at("    ") }}    pub fn {{ m.name }}({% if m.args.is_empty() %}&self{% else %}
        &self,
{%- for p in m.args %}
        {{ p.name }}: {{ p.ty }},
{%- endfor %}
    {% endif %}) -> {{ m.call_type }} {
        let params = {{ private }}::{{ m.params_struct }} {{ m.params_init }};
        self.core.{{ m.core_fn }}({{ loop.index0 }}, __rt::encode_params(&params))
    }
{%- endfor %}
}

impl __rt::GeneratedClient for {{ s.client }} {
    fn descriptor() -> &'static __rt::ServiceDescriptor {
        &{{ private }}::{{ s.descriptor }}
    }

    fn from_core(core: __rt::ClientCore) -> Self {
        Self { core }
    }
}

impl {{ s.api }} for {{ s.client }} {
{%- for m in s.calls %}

{{ m.impl_allows.at("    ") }}    fn {{ m.name }}(
        &self,
{%- for p in m.args %}
        {{ p.name }}: {{ p.ty }},
{%- endfor %}
        options: __rt::CallOptions,
    ) -> impl __rt::CallFuture<{{ m.ok }}, {{ m.err }}> {
        __rt::IntoFuture::into_future(Self::{{ m.name }}(self{% for a in m.args %}, {{ a.name }}{% endfor %}).options(options))
    }
{%- endfor %}
}
{%- endif %}
