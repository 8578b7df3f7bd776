#[doc(hidden)]
#[allow(dead_code)]
mod {{ private }} {
{%- for s in structs %}
    #[derive(
        {{ rt }}::codegen::serde::Serialize,
        {{ rt }}::codegen::serde::Deserialize,
    )]
    #[serde(crate = "{{ rt }}::codegen::serde")]
    pub(super) struct {{ s.name }} {
    {%- for f in s.fields %}
        {%- for a in f.attrs %}{{ a }}{% endfor %}
        pub(super) {{ f.name }}: {{ f.ty }},
    {%- endfor %}
    }
{% endfor %}
{%- for d in descriptors %}
    pub(super) static {{ d.name }}: {{ rt }}::codegen::ServiceDescriptor = {{ rt }}::codegen::ServiceDescriptor {
        name: {{ d.service }},
        package: {{ d.package }},
        version: {{ d.version }},
        description: {{ d.description }},
        topics: &[{% for t in topics %}{{ t }},{% endfor %}],
        endpoints: &[
        {%- for e in d.endpoints %}
            {{ rt }}::codegen::EndpointDescriptor {
                name: {{ e.name }},
                kind: {{ rt }}::codegen::EndpointKind::{{ e.kind }},
                subject: {{ e.subject }},
                timeout_ms: {{ e.timeout_ms }},
                retry: {{ rt }}::codegen::RetryPolicy { max_attempts: {{ e.max_attempts }}, backoff_ms: {{ e.backoff_ms }} },
                mode: {{ rt }}::codegen::DeliveryMode::{{ e.mode }},
                delivery: {{ rt }}::codegen::Delivery::{{ e.delivery }},
                params_schema: {{ e.params_schema }},
                result_schema: {{ e.result_schema }},
                errors: &[{% for x in e.errors %}{{ x }},{% endfor %}],
            },
        {%- endfor %}
        ],
    };
{% endfor %}
{%- if has_events %}
    pub(super) static EVENTS: {{ rt }}::codegen::EventsDescriptor = {{ rt }}::codegen::EventsDescriptor {
        package: {{ package }},
        topics: &[{% for t in topics %}{{ t }},{% endfor %}],
    };
{%- endif %}
}
