; Template used by template.ini: a Conv (+ optional Pool) block. Parameters: SECTION_NAME,
; SECTION_FILE_NAME and every key of the including section (INPUT, NB_FILTERS, POOL).
[{{SECTION_NAME}}_conv]
Input={{INPUT}}
Type=Conv
KernelDims=5 5
NbOutputs={{NB_FILTERS}}
ActivationFunction=Rectifier
WeightsFiller=XavierFiller

{% if POOL exists %}
[{{SECTION_NAME}}_pool]
Input={{SECTION_NAME}}_conv
Type=Pool
PoolDims={{POOL}} {{POOL}}
Stride={{POOL}}
NbOutputs=[{{SECTION_NAME}}_conv]NbOutputs
Pooling=Max
Mapping.Size=1
{% set OUTPUT %}{{SECTION_NAME}}_pool{% endset %}
{% else %}
{% set OUTPUT %}{{SECTION_NAME}}_conv{% endset %}
{% endif %}

[{{SECTION_NAME}}_out]
Input={{OUTPUT}}
Type=Dropout
NbOutputs={{NB_FILTERS}}
