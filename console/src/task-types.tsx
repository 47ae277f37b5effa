/** The built-in task types, offered in every form that names one, with a payload to start from for each. */
export const TASK_TYPES = ["echo", "sleep", "fail"];
export const EXAMPLE_PAYLOADS: Record<string, string> = {
  echo: '{"hello":"world"}',
  sleep: '{"ms":3000}',
  fail: '{"message":"boom","retryable":false}',
};

/**
 * A task type field: the built-in types as suggestions (any registered type may be typed), and choosing one of
 * them hands its example payload to `onExample`.
 */
export function TaskTypeInput({
  listId,
  value,
  onType,
  onExample,
  class: className,
  invalid,
}: {
  listId: string;
  value: string;
  onType: (type: string) => void;
  onExample: (payload: string) => void;
  class?: string;
  invalid?: true | undefined;
}) {
  return (
    <>
      <input
        name="type"
        class={className}
        list={listId}
        value={value}
        aria-invalid={invalid}
        onInput={(e) => {
          const next = e.currentTarget.value;
          onType(next);
          if (EXAMPLE_PAYLOADS[next]) onExample(EXAMPLE_PAYLOADS[next]);
        }}
      />
      <datalist id={listId}>
        {TASK_TYPES.map((t) => (
          <option key={t} value={t} />
        ))}
      </datalist>
    </>
  );
}
