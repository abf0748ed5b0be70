python$target:::function-entry
{
	@s = stddev();
}
