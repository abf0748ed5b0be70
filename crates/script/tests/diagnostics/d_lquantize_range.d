python$target:::function-entry
{
	@q = lquantize(arg2, 10, 0, 5);
}
