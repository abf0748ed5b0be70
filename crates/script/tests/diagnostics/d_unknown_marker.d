python$target:::function-sentry
{
	trace(1);
}
