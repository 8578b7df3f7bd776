{%- if server %}
{%- for d in s.docs %}{{ d }}{% endfor %}
///
/// Implement it with plain `async fn`s and serve it with [`{{ s.server }}`] on a `Host`.
pub trait {{ s.trait_name }}: ::core::marker::Send + ::core::marker::Sync + 'static {
{%- for m in s.members %}
    {%- for d in m.docs %}{{ d }}{% endfor %}
    {%- if m.many_args %}
    #[allow(clippy::too_many_arguments)]
    {%- endif %}
    {%- for a in m.allows %}{{ a }}{% endfor %}
    fn {{ m.name }}(
        &self,
        ctx: &{{ rt }}::Context,
        {%- for p in m.args %}
        {{ p.name }}: {{ p.ty }},
        {%- endfor %}
    ) -> impl ::core::future::Future<Output = ::core::result::Result<{{ m.ok }}, {{ m.err }}>> + ::core::marker::Send;
{%- endfor %}
}

/// Serves a [`{{ s.trait_name }}`] implementation: give it to a `natsgen::Host`.
pub struct {{ s.server }}<__Impl> {
    {%- if s.members.is_empty() %}
    #[allow(dead_code)]
    {%- endif %}
    inner: ::std::sync::Arc<__Impl>,
}

impl<__Impl: {{ s.trait_name }}> {{ s.server }}<__Impl> {
    /// Wraps an implementation.
    pub fn new(inner: __Impl) -> Self {
        Self { inner: ::std::sync::Arc::new(inner) }
    }

    /// Wraps an implementation that is shared with other code.
    pub fn from_arc(inner: ::std::sync::Arc<__Impl>) -> Self {
        Self { inner }
    }
}

impl<__Impl> ::core::fmt::Debug for {{ s.server }}<__Impl> {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        f.write_str({{ s.server_lit }})
    }
}

impl<__Impl: {{ s.trait_name }}> {{ rt }}::codegen::Service for {{ s.server }}<__Impl> {
    fn descriptor(&self) -> &'static {{ rt }}::codegen::ServiceDescriptor {
        &{{ private }}::{{ s.descriptor }}
    }

{%- if s.members.is_empty() %}
    fn call(
        &self,
        endpoint: usize,
        _ctx: {{ rt }}::Context,
        _payload: {{ rt }}::codegen::Bytes,
    ) -> {{ rt }}::codegen::BoxFuture<::core::result::Result<{{ rt }}::codegen::Bytes, {{ rt }}::ServiceError>> {
        ::std::boxed::Box::pin({{ rt }}::codegen::unknown_endpoint(endpoint))
    }
{%- else %}
    fn call(
        &self,
        endpoint: usize,
        ctx: {{ rt }}::Context,
        payload: {{ rt }}::codegen::Bytes,
    ) -> {{ rt }}::codegen::BoxFuture<::core::result::Result<{{ rt }}::codegen::Bytes, {{ rt }}::ServiceError>> {
        let inner = ::core::clone::Clone::clone(&self.inner);
        match endpoint {
{%- for m in s.members %}
            {{ loop.index0 }}usize => ::std::boxed::Box::pin(async move {
    {%- if m.is_handler %}
                let event = {{ m.decode_event }};
                let result = <__Impl as {{ s.trait_name }}>::{{ m.name }}(&inner, &ctx, event).await;
    {%- else %}
                {%- if m.args.is_empty() %}
                let _params: {{ private }}::{{ m.params_struct }} = {{ rt }}::codegen::decode_params(&payload)?;
                {%- else %}
                let params: {{ private }}::{{ m.params_struct }} = {{ rt }}::codegen::decode_params(&payload)?;
                {%- endif %}
                let result = <__Impl as {{ s.trait_name }}>::{{ m.name }}(&inner, &ctx, {% for p in m.args %}params.{{ p.name }},{% endfor %}).await;
    {%- endif %}
                match result {
                    ::core::result::Result::Ok(value) => {{ rt }}::codegen::encode_result(&value),
                    ::core::result::Result::Err(error) => ::core::result::Result::Err(
                        {{ rt }}::codegen::MethodError::into_service_error(error),
                    ),
                }
            }),
{%- endfor %}
            _ => ::std::boxed::Box::pin({{ rt }}::codegen::unknown_endpoint(endpoint)),
        }
    }
{%- endif %}
}
{%- endif %}
{% if client %}
/// The calls of `{{ s.wire }}` as a trait, so callers can be generic over it and tests can
/// substitute their own implementation. [`{{ s.client }}`] implements it.
pub trait {{ s.api }}: ::core::marker::Send + ::core::marker::Sync {
{%- for m in s.calls %}
    {%- for d in m.docs %}{{ d }}{% endfor %}
    {%- if m.many_args %}
    #[allow(clippy::too_many_arguments)]
    {%- endif %}
    {%- for a in m.allows %}{{ a }}{% endfor %}
    fn {{ m.name }}(
        &self,
        {%- for p in m.args %}
        {{ p.name }}: {{ p.ty }},
        {%- endfor %}
        options: {{ rt }}::CallOptions,
    ) -> impl ::core::future::Future<Output = ::core::result::Result<{{ m.ok }}, {{ rt }}::CallError<{{ m.err }}>>> + ::core::marker::Send;
{%- endfor %}
}

{%- for d in s.docs %}{{ d }}{% endfor %}
///
/// A typed client: each method returns a call builder; `.await` it, or set per-call options first.
#[derive(::core::fmt::Debug, ::core::clone::Clone)]
pub struct {{ s.client }} {
    core: {{ rt }}::codegen::ClientCore,
}

impl {{ s.client }} {
    /// A client for `{{ s.wire }}` over `connection`.
    pub fn new(connection: &{{ rt }}::Connection) -> Self {
        Self { core: {{ rt }}::codegen::ClientCore::new(connection, &{{ private }}::{{ s.descriptor }}) }
    }

    /// The same client with other defaults (retries) than its connection's.
    pub fn with_options(self, options: {{ rt }}::ClientOptions) -> Self {
        Self { core: self.core.with_options(options) }
    }

    /// The same client, retrying calls that certainly did not run (no responders, busy) this way.
    pub fn with_retry(self, retry: {{ rt }}::CallRetry) -> Self {
        Self { core: self.core.with_retry(retry) }
    }
{%- for m in s.calls %}

    {%- for d in m.docs %}{{ d }}{% endfor %}
    {%- if m.many_args %}
    #[allow(clippy::too_many_arguments)]
    {%- endif %}
    {%- for a in m.allows %}{{ a }}{% endfor %}
    pub fn {{ m.name }}(
        &self,
        {%- for p in m.args %}
        {{ p.name }}: {{ p.ty }},
        {%- endfor %}
    ) -> {{ m.call_type }} {
        self.core.{{ m.core_fn }}(
            {{ loop.index0 }}usize,
            {{ rt }}::codegen::encode_params(&{{ private }}::{{ m.params_struct }} { {% for p in m.args %}{{ p.name }},{% endfor %} }),
        )
    }
{%- endfor %}
}

impl {{ rt }}::codegen::GeneratedClient for {{ s.client }} {
    fn descriptor() -> &'static {{ rt }}::codegen::ServiceDescriptor {
        &{{ private }}::{{ s.descriptor }}
    }

    fn from_core(core: {{ rt }}::codegen::ClientCore) -> Self {
        Self { core }
    }
}

impl {{ s.api }} for {{ s.client }} {
{%- for m in s.calls %}
    {%- if m.many_args %}
    #[allow(clippy::too_many_arguments)]
    {%- endif %}
    fn {{ m.name }}(
        &self,
        {%- for p in m.args %}
        {{ p.name }}: {{ p.ty }},
        {%- endfor %}
        options: {{ rt }}::CallOptions,
    ) -> impl ::core::future::Future<Output = ::core::result::Result<{{ m.ok }}, {{ rt }}::CallError<{{ m.err }}>>> + ::core::marker::Send {
        ::core::future::IntoFuture::into_future({{ s.client }}::{{ m.name }}(self, {% for p in m.args %}{{ p.name }},{% endfor %}).options(options))
    }
{%- endfor %}
}
{% endif %}
